<?php
/**
 * MailPoet's subscriber status, mirrored into the customer meta Keepwell reads.
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

/**
 * MailPoet keeps subscribers in its own tables, which WooCommerce's REST API and webhooks do not
 * show. When a subscriber's status changes, the customer's consent meta follows it, and saving
 * the customer sends Keepwell a customer.updated webhook.
 */
class Keepwell_MailPoet {

	/**
	 * Listens to MailPoet when it is active.
	 */
	public static function init() {
		add_action( 'mailpoet_subscriber_status_changed', array( __CLASS__, 'status_changed' ) );
	}

	/**
	 * Mirrors one subscriber's status: subscribed is consent; unsubscribed, bounced and inactive
	 * withdraw it; unconfirmed (double opt-in pending) changes nothing.
	 *
	 * @param int $subscriber_id MailPoet's subscriber id.
	 */
	public static function status_changed( $subscriber_id ) {
		if ( ! class_exists( '\MailPoet\API\API' ) ) {
			return;
		}
		try {
			$subscriber = \MailPoet\API\API::MP( 'v1' )->getSubscriber( $subscriber_id );
		} catch ( Exception $e ) {
			return;
		}
		$user_id = isset( $subscriber['wp_user_id'] ) ? (int) $subscriber['wp_user_id'] : 0;
		$status  = isset( $subscriber['status'] ) ? $subscriber['status'] : '';
		if ( ! $user_id || ! in_array( $status, array( 'subscribed', 'unsubscribed', 'bounced', 'inactive' ), true ) ) {
			return;
		}
		$customer = new WC_Customer( $user_id );
		Keepwell_Meta::set_consent( $customer, 'subscribed' === $status, 'mailpoet' );
		$customer->save();
	}
}
