<?php
/**
 * The meta keys Keepwell reads, and the block checkout's fields that fill them.
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

/**
 * Meta keys shared by the plugin's parts. Keepwell's connector reads exactly these names.
 */
class Keepwell_Meta {

	const OPT_IN          = '_keepwell_marketing_opt_in';
	const OPT_IN_AT       = '_keepwell_marketing_opt_in_at';
	const OPT_IN_SOURCE   = '_keepwell_marketing_opt_in_source';
	const BIRTHDAY        = '_keepwell_birthday';
	const OCCASION        = '_keepwell_occasion';
	const OCCASION_DATE   = '_keepwell_occasion_date';
	const OCCASION_FOR    = '_keepwell_occasion_for';
	const OCCASION_REMIND = '_keepwell_occasion_remind';

	/**
	 * Block checkout field id => the meta key its value is copied to.
	 *
	 * @var array<string, string>
	 */
	const BLOCK_FIELDS = array(
		'keepwell/marketing-opt-in' => self::OPT_IN,
		'keepwell/occasion'         => self::OCCASION,
		'keepwell/occasion-date'    => self::OCCASION_DATE,
		'keepwell/occasion-for'     => self::OCCASION_FOR,
		'keepwell/occasion-remind'  => self::OCCASION_REMIND,
	);

	/**
	 * Stores the customer's consent with when and where it was given or withdrawn.
	 *
	 * @param WC_Data $object  A WC_Customer or WC_Order.
	 * @param bool    $consent Whether the customer agrees to marketing email.
	 * @param string  $source  Where: checkout, account or mailpoet.
	 */
	public static function set_consent( $object, $consent, $source ) {
		$object->update_meta_data( self::OPT_IN, $consent ? 'yes' : 'no' );
		$object->update_meta_data( self::OPT_IN_AT, gmdate( 'c' ) );
		$object->update_meta_data( self::OPT_IN_SOURCE, $source );
	}

	/**
	 * A YYYY-MM-DD date as typed, or '' when it is not one.
	 *
	 * @param string $value The posted value.
	 * @return string
	 */
	public static function clean_date( $value ) {
		$value = sanitize_text_field( (string) $value );
		$date  = DateTime::createFromFormat( '!Y-m-d', $value );
		return ( $date && $date->format( 'Y-m-d' ) === $value ) ? $value : '';
	}

	/**
	 * Registers the plugin's fields with the block checkout (WooCommerce 8.9 and later).
	 */
	public static function register_block_checkout_fields() {
		if ( ! function_exists( 'woocommerce_register_additional_checkout_field' ) ) {
			return;
		}
		add_action( 'woocommerce_set_additional_field_value', array( __CLASS__, 'copy_block_field' ), 10, 4 );
		woocommerce_register_additional_checkout_field(
			array(
				'id'       => 'keepwell/marketing-opt-in',
				'label'    => Keepwell_Consent::label(),
				'location' => 'order',
				'type'     => 'checkbox',
			)
		);
		if ( ! Keepwell_Occasion::enabled() ) {
			return;
		}
		woocommerce_register_additional_checkout_field(
			array(
				'id'       => 'keepwell/occasion',
				'label'    => __( 'Is it for a special occasion?', 'keepwell' ),
				'location' => 'order',
				'type'     => 'select',
				'options'  => Keepwell_Occasion::block_options(),
				'required' => false,
			)
		);
		woocommerce_register_additional_checkout_field(
			array(
				'id'         => 'keepwell/occasion-date',
				'label'      => __( 'Occasion date (YYYY-MM-DD)', 'keepwell' ),
				'location'   => 'order',
				'type'       => 'text',
				'required'   => false,
				'attributes' => array( 'pattern' => '[0-9]{4}-[0-9]{2}-[0-9]{2}' ),
			)
		);
		woocommerce_register_additional_checkout_field(
			array(
				'id'       => 'keepwell/occasion-for',
				'label'    => __( 'For whom', 'keepwell' ),
				'location' => 'order',
				'type'     => 'text',
				'required' => false,
			)
		);
		woocommerce_register_additional_checkout_field(
			array(
				'id'       => 'keepwell/occasion-remind',
				'label'    => __( 'Remind me a week before next year', 'keepwell' ),
				'location' => 'order',
				'type'     => 'checkbox',
			)
		);
	}

	/**
	 * Copies a block checkout answer into the meta key Keepwell reads.
	 *
	 * @param string  $key    The field id.
	 * @param mixed   $value  The answer.
	 * @param string  $group  The field group.
	 * @param WC_Data $object The order (or customer) being saved.
	 */
	public static function copy_block_field( $key, $value, $group, $object ) {
		if ( ! isset( self::BLOCK_FIELDS[ $key ] ) || ! $object instanceof WC_Order ) {
			return;
		}
		if ( 'keepwell/marketing-opt-in' === $key ) {
			if ( $value ) {
				self::set_consent( $object, true, 'checkout' );
				Keepwell_Consent::remember_for_customer( $object->get_customer_id(), 'checkout' );
			}
			return;
		}
		if ( 'keepwell/occasion-remind' === $key ) {
			$value = $value ? 'yes' : 'no';
		} elseif ( 'keepwell/occasion-date' === $key ) {
			$value = self::clean_date( $value );
		} else {
			$value = sanitize_text_field( (string) $value );
		}
		$object->update_meta_data( self::BLOCK_FIELDS[ $key ], $value );
	}
}
